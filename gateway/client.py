"""A small Python client of the ranking gateway."""
from __future__ import annotations

from collections.abc import Sequence

import grpc

from gateway.proto import pb, pb_grpc


class RankingClient:
    def __init__(self, address: str, timeout_s: float = 2.0, token: str | None = None,
                 root_cert: bytes | None = None) -> None:
        if root_cert is not None:
            self.channel = grpc.secure_channel(address, grpc.ssl_channel_credentials(root_certificates=root_cert))
        else:
            self.channel = grpc.insecure_channel(address)
        self.stub = pb_grpc.RankingStub(self.channel)
        self.timeout_s = timeout_s
        self.metadata = (("authorization", f"Bearer {token}"),) if token else None

    def rank(self, user_id: int, scenario: str, candidates: Sequence[int], query: str = "", query_id: int = 0,
             query_terms: Sequence[int] = (), request_id: str = "", hour: int | None = None,
             weekday: int | None = None, log_impressions: bool = False, ts_ms: int | None = None,
             model: str = "") -> "pb.RankResponse":
        context = pb.Context()
        if hour is not None:
            context.hour = hour
        if weekday is not None:
            context.weekday = weekday
        if ts_ms is not None:
            context.ts_ms = ts_ms
        request = pb.RankRequest(request_id=request_id, user_id=user_id, scenario=scenario, query=query,
                                 query_id=query_id, query_terms=list(query_terms), candidates=list(candidates),
                                 context=context, log_impressions=log_impressions, model=model)
        return self.stub.Rank(request, timeout=self.timeout_s, metadata=self.metadata)

    def close(self) -> None:
        self.channel.close()

    def __enter__(self) -> "RankingClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
