"""Data layer: the tidy site-day contract, readers, the virtual FLUXNET and the data manifest.

Public API (imported lazily, so ``import lue_spie.data.schema`` does not pull in torch):

- :func:`load_dataset`, :class:`Dataset`, :func:`to_forcing`, :class:`ForcingBatch`,
  :func:`as_forcing_batch`, :func:`good_days`, :func:`write_dataset`, :func:`parse_years`
  (:mod:`lue_spie.data.io`);
- :class:`DataSettings` (:mod:`lue_spie.data.settings`) and the data step of the book
  (:func:`lue_spie.data.step.run`);
- :class:`DataSource`, :func:`get_source`, :func:`registered_sources`
  (:mod:`lue_spie.data.sources`: the one interface through which a dataset folder is made);
- :func:`validate_site_day`, :func:`validate_sites`, ``PFTS``, ``KOEPPEN_TYPES``,
  ``FORCING_COLUMNS``, ``QC_COLUMNS``, ``FEATURE_COLUMNS`` (:mod:`lue_spie.data.schema`);
- ``FEATURE_CLASSES``, :func:`feature_matrix` (:mod:`lue_spie.data.features`);
- :func:`read_fluxnet_dataset` (:mod:`lue_spie.data.fluxnet`);
- :func:`load_manifest`, :func:`verify_manifest` (:mod:`lue_spie.data.manifest`).
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS: dict[str, tuple[str, str]] = {
    "load_dataset": ("lue_spie.data.io", "load_dataset"),
    "Dataset": ("lue_spie.data.io", "Dataset"),
    "to_forcing": ("lue_spie.data.io", "to_forcing"),
    "ForcingBatch": ("lue_spie.data.io", "ForcingBatch"),
    "good_days": ("lue_spie.data.io", "good_days"),
    "write_dataset": ("lue_spie.data.io", "write_dataset"),
    "as_forcing_batch": ("lue_spie.data.io", "as_forcing_batch"),
    "parse_years": ("lue_spie.data.io", "parse_years"),
    "DataSettings": ("lue_spie.data.settings", "DataSettings"),
    "DataSource": ("lue_spie.data.sources", "DataSource"),
    "get_source": ("lue_spie.data.sources", "get_source"),
    "registered_sources": ("lue_spie.data.sources", "registered_sources"),
    "validate_site_day": ("lue_spie.data.schema", "validate_site_day"),
    "validate_sites": ("lue_spie.data.schema", "validate_sites"),
    "PFTS": ("lue_spie.data.schema", "PFTS"),
    "KOEPPEN_TYPES": ("lue_spie.data.schema", "KOEPPEN_TYPES"),
    "FORCING_COLUMNS": ("lue_spie.data.schema", "FORCING_COLUMNS"),
    "QC_COLUMNS": ("lue_spie.data.schema", "QC_COLUMNS"),
    "FEATURE_COLUMNS": ("lue_spie.data.schema", "FEATURE_COLUMNS"),
    "FEATURE_CLASSES": ("lue_spie.data.features", "FEATURE_CLASSES"),
    "feature_matrix": ("lue_spie.data.features", "feature_matrix"),
    "read_fluxnet_dataset": ("lue_spie.data.fluxnet", "read_fluxnet_dataset"),
    "load_manifest": ("lue_spie.data.manifest", "load"),
    "verify_manifest": ("lue_spie.data.manifest", "verify"),
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'lue_spie.data' has no attribute {name!r}")
    module, attr = _EXPORTS[name]
    value = getattr(importlib.import_module(module), attr)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
