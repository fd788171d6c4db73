"""The application factory uvicorn imports in each worker process.

``serve`` passes its options to the workers in ``REVOCATION_SERVE_CONFIG``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from starlette.applications import Starlette

from app.application import create_app
from app.config import ServiceConfig
from app.logging import configure_logging

CONFIG_ENV = "REVOCATION_SERVE_CONFIG"


def encode_config(config: ServiceConfig) -> str:
    return json.dumps(
        {
            "data_dir": str(config.data_dir),
            "plugins_dir": str(config.plugins_dir.resolve()) if config.plugins_dir else None,
            "mongodb_uri": config.mongodb_uri,
            "mongodb_database": config.mongodb_database,
            "forwarded_allow_ips": list(config.forwarded_allow_ips),
            "max_body_bytes": config.max_body_bytes,
            "max_header_bytes": config.max_header_bytes,
            "max_headers": config.max_headers,
            "fetch_allow_private": config.fetch_allow_private,
            "delivery": config.delivery,
            "delivery_lease_s": config.delivery_lease_s,
            "metrics": config.metrics,
            "rate_limit_per_client": config.rate_limit_per_client,
            "rate_limit_per_address": config.rate_limit_per_address,
            "log_json": config.log_json,
            "log_level": config.log_level,
        }
    )


def decode_config(text: str) -> ServiceConfig:
    raw = json.loads(text)
    return ServiceConfig(
        data_dir=Path(raw["data_dir"]),
        tenants_dir=None,
        plugins_dir=Path(raw["plugins_dir"]) if raw["plugins_dir"] else None,
        mongodb_uri=raw["mongodb_uri"],
        mongodb_database=raw["mongodb_database"],
        forwarded_allow_ips=tuple(raw["forwarded_allow_ips"]),
        max_body_bytes=raw["max_body_bytes"],
        max_header_bytes=raw["max_header_bytes"],
        max_headers=raw["max_headers"],
        fetch_allow_private=raw["fetch_allow_private"],
        delivery=raw["delivery"],
        delivery_lease_s=raw["delivery_lease_s"],
        metrics=raw["metrics"],
        rate_limit_per_client=raw["rate_limit_per_client"],
        rate_limit_per_address=raw["rate_limit_per_address"],
        log_json=raw["log_json"],
        log_level=raw["log_level"],
    )


def worker_config() -> ServiceConfig:
    """This process's options: what ``serve`` passed, else the environment's."""
    text = os.environ.get(CONFIG_ENV)
    return decode_config(text) if text else ServiceConfig.from_env()


def app_factory() -> Starlette:
    config = worker_config()
    configure_logging(json=config.log_json, level=config.log_level)
    return create_app(config)
