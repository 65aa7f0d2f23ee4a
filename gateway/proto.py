"""The gateway's generated gRPC code, compiled from ranking.proto on first use.

Generated modules go to ``gateway/_generated/`` (not committed) and are rebuilt
when the .proto changes (its hash is stored beside them).
"""
from __future__ import annotations

import hashlib
import importlib
import sys
from pathlib import Path

PROTO = Path(__file__).with_name("ranking.proto")
OUT = Path(__file__).with_name("_generated")


def _compile() -> None:
    from grpc_tools import protoc

    OUT.mkdir(exist_ok=True)
    digest = hashlib.sha256(PROTO.read_bytes()).hexdigest()
    stamp = OUT / ".proto-sha256"
    if stamp.exists() and stamp.read_text() == digest and (OUT / "ranking_pb2.py").exists():
        return
    include = str(Path(importlib.import_module("grpc_tools").__file__).parent / "_proto")
    rc = protoc.main(["protoc", f"-I{PROTO.parent}", f"-I{include}", f"--python_out={OUT}",
                      f"--grpc_python_out={OUT}", str(PROTO)])
    if rc != 0:
        raise RuntimeError(f"protoc failed on {PROTO} (exit {rc})")
    (OUT / "__init__.py").write_text("")
    stamp.write_text(digest)


_compile()
if str(OUT) not in sys.path:
    sys.path.insert(0, str(OUT))  # ranking_pb2_grpc imports ranking_pb2 as a top-level module

import ranking_pb2 as pb  # noqa: E402
import ranking_pb2_grpc as pb_grpc  # noqa: E402

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["Ranking"].full_name

__all__ = ["pb", "pb_grpc", "SERVICE_NAME"]
