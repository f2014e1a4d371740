"""The book's profiles: one way to run every chapter, composed of the steps' settings objects.

A :class:`Profile` holds the settings object of each step (:class:`DataSettings`,
:class:`CalibrationSettings`, :class:`ExtrapolationSettings` with the methods'
hyperparameters, :class:`AssessSettings`, :class:`TwinSettings`, :class:`ImportanceSettings`,
:class:`MapsSettings`, :class:`ExecutionSettings`) and the few knobs every chapter shares
(``seed``, ``device``, ``sites``, ``years``, ``n_show``). A chapter's papermill
parameters are those knobs under one naming rule, so a knob reads the same from the command
line to the chapter (:meth:`Profile.knobs`):

- a shared knob keeps its name (``seed``), and so do the execution settings (``workers``,
  ``scheduler``: the ``--workers`` of every command);
- a step setting is ``<step>_<field>``: ``CalibrationSettings.max_gen`` is
  ``calibrate_max_gen`` (``lue-spie calibrate --max-gen``), ``DataSettings.n_sites`` is
  ``data_n_sites``, ``AssessSettings.n_groups`` is ``assess_n_groups``;
- a method's hyperparameter is ``<method>_<name>``, the method's name in lower case with
  ``-`` as ``_``: ``SPIE``'s ``epochs`` is ``spie_epochs`` (``lue-spie extrapolate --param
  SPIE.epochs=...``), ``OPT-All``'s ``settings.max_gen`` is ``opt_all_max_gen``.

Each step's ``seed`` and ``device`` come from the shared knobs of those names, and its
``sites`` and ``years`` likewise; they are not knobs of their own.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from lue_spie import options
from lue_spie.assess.settings import AssessSettings, TwinSettings
from lue_spie.book.publish import PublishSettings
from lue_spie.calibrate.settings import CalibrationSettings
from lue_spie.data.settings import DataSettings
from lue_spie.execution import ExecutionSettings
from lue_spie.extrapolate.settings import ExtrapolationSettings
from lue_spie.importance.settings import ImportanceSettings
from lue_spie.maps.settings import MapsSettings
from lue_spie.methods.base import method_class
from lue_spie.payoff.settings import PayoffSettings

__all__ = ["Knob", "Profile", "PROFILES", "get_profile", "method_slug", "SHARED"]

#: Knobs every chapter shares (each step takes its own of these from them).
SHARED: tuple[str, ...] = ("seed", "device", "sites", "years", "n_show")
#: Fields of the steps' settings that are not knobs of their own: the shared knobs fill them,
#: or the chapter itself does (which methods it runs or assesses).
_FROM_SHARED = ("seed", "device", "sites", "years")
_CHOSEN_BY_CHAPTER = {"extrapolate": ("methods", "method_params"), "assess": ("methods",)}
#: The sections of a profile whose fields are knobs ``<section>_<field>``.
_SECTIONS = ("data", "calibrate", "extrapolate", "assess", "twin", "importance", "maps",
             "payoff")


def method_slug(method: str) -> str:
    """A method's name as the prefix of its knobs: ``"OPT-All"`` -> ``"opt_all"``."""
    return method.lower().replace("-", "_")


@dataclass(frozen=True)
class Knob:
    """One notebook parameter of a profile.

    Attributes:
        name: The parameter's name in the chapters (``calibrate_max_gen``).
        value: Its value in the profile.
        owner: The settings class (or method class) whose field it is.
        field: The field's name there (``max_gen``).
        doc: The field's description (from the owner's docstring).
    """

    name: str
    value: Any
    owner: type
    field: str
    doc: str

    def coerce(self, value: Any) -> Any:
        """``value`` checked against the field's type (one-line error naming the knob)."""
        try:
            return options.coerce(self.owner, self.field, value)
        except options.KnobError as err:
            raise options.KnobError(f"-p {self.name}: {err}") from None


def _jsonable(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


@dataclass(frozen=True)
class Profile:
    """One way to run the book: the settings of every step, and what it costs.

    Attributes:
        name: Profile name (``ci``, ``demo``, ``paper``).
        description: What it is for and roughly how long it takes.
        seed: Random seed of every chapter (the virtual FLUXNET, the searches, the split, the
            methods, the likelihood's site groups, the SHAP background).
        device: ``"cpu"``, ``"cuda"`` or ``"auto"`` (CUDA when available), for the CMA-ES
            searches and SPIE.
        sites: Site subset (ids) of the calibration and the cross-validation; None = all.
        years: Years to use (a list of ints); None = all.
        n_show: How many sites the chapters show in per-site figures.
        execution: Where the chapters' independent units run (site chunks, method x fold):
            ``workers`` Dask worker processes (0: in the chapter's kernel) or a running
            ``scheduler``. The results are the same (:mod:`lue_spie.execution`).
        data: The dataset (:class:`~lue_spie.data.settings.DataSettings`).
        calibrate: The site calibration's CMA-ES
            (:class:`~lue_spie.calibrate.settings.CalibrationSettings`).
        extrapolate: The cross-validation (folds) and, in ``method_params``, each method's
            hyperparameters (:class:`~lue_spie.extrapolate.settings.ExtrapolationSettings`).
        assess: The assessment (:class:`~lue_spie.assess.settings.AssessSettings`).
        twin: The structural-error twin (:class:`~lue_spie.assess.settings.TwinSettings`).
        importance: The feature importance
            (:class:`~lue_spie.importance.settings.ImportanceSettings`).
        maps: The maps of a virtual continent (:class:`~lue_spie.maps.settings.MapsSettings`).
        payoff: When SPIE pays off: the sweep over two dials of the virtual world, run at a
            small size or read from the published table of a larger one
            (:class:`~lue_spie.payoff.settings.PayoffSettings`).
        publish: The repository of a published book and where its chapters launch
            (:class:`~lue_spie.book.publish.PublishSettings`; not a notebook parameter:
            it changes the book's buttons, never a result).
    """

    name: str
    description: str
    seed: int = 42
    device: str = "auto"
    sites: tuple[str, ...] | None = None
    years: tuple[int, ...] | None = None
    n_show: int = 4
    execution: ExecutionSettings = field(default_factory=ExecutionSettings)
    data: DataSettings = field(default_factory=DataSettings)
    calibrate: CalibrationSettings = field(default_factory=CalibrationSettings)
    extrapolate: ExtrapolationSettings = field(default_factory=ExtrapolationSettings)
    assess: AssessSettings = field(default_factory=AssessSettings)
    twin: TwinSettings = field(default_factory=TwinSettings)
    importance: ImportanceSettings = field(default_factory=ImportanceSettings)
    maps: MapsSettings = field(default_factory=MapsSettings)
    payoff: PayoffSettings = field(default_factory=PayoffSettings)
    publish: PublishSettings = field(default_factory=PublishSettings)

    def knobs(self) -> dict[str, Knob]:
        """Every knob of the profile by its notebook-parameter name (see the module
        docstring for the naming rule)."""
        out: dict[str, Knob] = {}
        docs = options.field_docs(Profile)
        for name in SHARED:
            out[name] = Knob(name, _jsonable(getattr(self, name)), Profile, name, docs[name])
        for name in ("workers", "scheduler"):
            out[name] = Knob(name, getattr(self.execution, name), ExecutionSettings, name,
                             options.field_docs(ExecutionSettings).get(name, ""))
        for section in _SECTIONS:
            obj = getattr(self, section)
            docs = options.field_docs(type(obj))
            skip = (*_FROM_SHARED, *_CHOSEN_BY_CHAPTER.get(section, ()))
            for f in options.knobs(type(obj), exclude=skip):
                name = f"{section}_{f.name}"
                out[name] = Knob(name, _jsonable(getattr(obj, f.name)), type(obj), f.name,
                                 docs.get(f.name, ""))
        for method, params in self.extrapolate.method_params.items():
            cls = method_class(method)
            docs = options.field_docs(cls)
            for key, value in params.items():
                if isinstance(value, Mapping):  # a settings object: its fields are the knobs
                    nested = _nested_class(cls, key)
                    ndocs = options.field_docs(nested)
                    for k, v in value.items():
                        name = f"{method_slug(method)}_{k}"
                        out[name] = Knob(name, _jsonable(v), nested, k, ndocs.get(k, ""))
                else:
                    name = f"{method_slug(method)}_{key}"
                    out[name] = Knob(name, _jsonable(value), cls, key, docs.get(key, ""))
        return out

    def parameters(self) -> dict[str, Any]:
        """The notebook parameters of this profile (JSON-friendly: tuples become lists)."""
        return {name: knob.value for name, knob in self.knobs().items()}


def _nested_class(cls: type, name: str) -> type:
    """The settings class of a method's hyperparameter ``name`` (e.g. OPT-All's
    ``settings``: :class:`CalibrationSettings`)."""
    f = next(f for f in dataclasses.fields(cls) if f.name == name)
    default = f.default_factory() if f.default_factory is not dataclasses.MISSING \
        else f.default
    return type(default)


def _methods(*, opt: Mapping[str, Any], rf_trees: int, spie_epochs: int = 2000,
             pmodel_window_days: float = 15.0) -> dict[str, dict[str, Any]]:
    """The methods' hyperparameters a profile sets (the others keep their defaults)."""
    return {"OPT-All": {"settings": dict(opt)}, "OPT-PFT": {"settings": dict(opt)},
            "sRF": {"n_estimators": rf_trees}, "mRF": {"n_estimators": rf_trees},
            "SPIE": {"epochs": spie_epochs, "batch_size": 32, "mapping": "log"},
            "P-model": {"settings": {"window_days": pmodel_window_days}}}


#: The ci book runs a tiny pay-off sweep (four points of 16 sites x 2 years, short searches);
#: the demo and paper books show the published table of a larger sweep instead.
_CI_SWEEP = PayoffSettings(run=True, x_factors=(0.0, 1.0), y_factors=(0.0, 1.0), n_sites=16,
                           n_years=2, n_folds=4, calibrate_max_gen=60, opt_max_gen=30,
                           rf_trees=50, spie_epochs=200, dtype="float64")
_PUBLISHED_SWEEP = PayoffSettings(run=False)

PROFILES: dict[str, Profile] = {
    p.name: p
    for p in (
        Profile(
            name="ci",
            description="short runs for CI (24 sites x 3 years): the whole pipeline and the "
                        "book, SPIE's 2000 epochs twice (chapter 8 and again in chapter 10's "
                        "twin)",
            n_show=4,
            data=DataSettings(n_sites=24, n_years=3),
            calibrate=CalibrationSettings(max_gen=100, restarts=0, dtype="float64"),
            extrapolate=ExtrapolationSettings(n_folds=10, method_params=_methods(
                opt={"max_gen": 100, "restarts": 0, "dtype": "float64"}, rf_trees=100)),
            assess=AssessSettings(n_groups=200),
            twin=TwinSettings(enabled=True),
            importance=ImportanceSettings(background=None, pd_grid=10),
            maps=MapsSettings(resolution=2.5, chunk=8),
            payoff=_CI_SWEEP,
        ),
        Profile(
            name="demo",
            description="the paper's shape at reduced cost: its 196 sites with 8 of its 10 "
                        "years in the virtual world as hard as the paper's sites (`paper`), "
                        "shorter CMA-ES runs in float32 on two Dask workers, SPIE's 2000 "
                        "epochs; no structural-error twin",
            n_show=6,
            execution=ExecutionSettings(workers=2),
            data=DataSettings(n_sites=196, n_years=8, world="paper"),
            calibrate=CalibrationSettings(max_gen=500, restarts=1, dtype="float32"),
            extrapolate=ExtrapolationSettings(n_folds=10, method_params=_methods(
                opt={"max_gen": 400, "restarts": 0, "dtype": "float32"}, rf_trees=100)),
            assess=AssessSettings(n_groups=200),
            twin=TwinSettings(enabled=False),
            importance=ImportanceSettings(background=None, pd_grid=20),
            maps=MapsSettings(resolution=1.0, chunk=16),
            payoff=_PUBLISHED_SWEEP,
        ),
        Profile(
            name="paper",
            description="the paper's size (196 sites x 10 years) in the `paper` world, long "
                        "CMA-ES runs and the structural-error twin of all twelve methods, on two "
                        "Dask workers",
            n_show=8,
            execution=ExecutionSettings(workers=2),
            data=DataSettings(n_sites=196, n_years=10, world="paper"),
            calibrate=CalibrationSettings(max_gen=1000, restarts=2, dtype="float64"),
            extrapolate=ExtrapolationSettings(n_folds=10, method_params=_methods(
                opt={"max_gen": 1000, "restarts": 1, "dtype": "float64"}, rf_trees=100)),
            assess=AssessSettings(n_groups=200),
            twin=TwinSettings(enabled=True, methods=(
                "PFTmean", "Climmean", "PFTmed", "Climmed", "Sitesim", "OPT-All", "OPT-PFT",
                "sRF", "mRF", "mNN", "SPIE", "P-model")),
            importance=ImportanceSettings(background=None, pd_grid=50),
            maps=MapsSettings(resolution=0.5, chunk=16),
            payoff=_PUBLISHED_SWEEP,
        ),
    )
}


def get_profile(name: str) -> Profile:
    """The profile called ``name``.

    Raises:
        KeyError: naming the unknown profile and the known ones.
    """
    try:
        return PROFILES[name]
    except KeyError:
        raise KeyError(f"unknown book profile {name!r}; expected one of "
                       f"{sorted(PROFILES)}") from None
