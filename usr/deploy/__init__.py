"""Production deployment: docker-compose and Kubernetes generated from the typed configuration.

``usr deploy render`` writes ``docker-compose.yml``, the Kubernetes base under
``deploy/base/``, the Prometheus configuration and the Grafana dashboard from
``deploy/base/usr.yaml`` (the production configuration, in the usr/config.py format),
so a port, a host name or a topic changes in one place. See deploy/README.md.
"""
