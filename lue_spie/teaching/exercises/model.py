"""Checkers of chapter 1, the LUE model: its sensitivity functions and lags."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, ClassVar

from lue_spie.layout import Layout
from lue_spie.teaching.exercises.answers import _MONTHS, _month, _number, _numbers, _results
from lue_spie.teaching.exercises.base import Exercise, Feedback, Hint


class HalfMaximumTemperature(Exercise, exercise_id="01.1"):
    """f_T = 0.5 for T_opt = 20 degC and k_T = 6 (the values the question gives)."""

    title = "Half-maximum temperature"
    expects = "the two temperatures [degC] where f_T = 0.5, as a pair (low, high)"
    Topt: ClassVar[float] = 20.0
    kT: ClassVar[float] = 6.0
    tolerance: ClassVar[float] = 0.15  # degC: answers rounded to 0.1 degC pass

    def _f_T(self, T: float) -> float:
        import torch

        from lue_spie.model import f_T

        t = torch.tensor(T, dtype=torch.float64)
        return float(f_T(t, torch.tensor(self.Topt, dtype=torch.float64),
                         torch.tensor(self.kT, dtype=torch.float64)))

    def _expected(self) -> tuple[float, float]:
        from scipy.optimize import brentq

        # f_T falls monotonically from 1 at Topt; the root is found on the model's own code.
        d = brentq(lambda x: self._f_T(self.Topt + x) - 0.5, 0.0, 20.0 * self.kT, xtol=1e-10)
        return self.Topt - d, self.Topt + d

    def judge(self, answer: Any) -> Feedback:
        lo, hi = sorted(_numbers(answer, 2, self.expects))
        e_lo, e_hi = self._expected()
        f_lo, f_hi = self._f_T(lo), self._f_T(hi)
        if abs(lo - e_lo) <= self.tolerance and abs(hi - e_hi) <= self.tolerance:
            return self.right("f_T is half its maximum at both temperatures. They lie at the "
                              "same distance below and above T_opt, as f_T is symmetric "
                              "around it, and that distance grows in proportion to k_T: "
                              "k_T sets the width of the temperature response.")
        centre = 0.5 * (lo + hi)
        if abs(centre - self.Topt) > self.tolerance:
            raise Hint(f"f_T is symmetric around T_opt = {self.Topt:g} degC, so the two "
                       "temperatures lie at the same distance below and above it; yours are "
                       f"centred on {centre:.2f} degC.")
        half = 0.5 * (hi - lo)
        if abs(half - self.kT * math.log(2.0)) <= self.tolerance:
            raise Hint("that would be right if f_T were exp(-|z|) with z = (T - T_opt)/k_T; "
                       "it is not: write 2 e^-z / (1 + e^-2z) as 1/cosh(z) and solve "
                       "cosh(z) = 2.")
        direction = "further from" if f_lo > 0.5 else "closer to"
        raise Hint(f"f_T is {f_lo:.3f} at {lo:.2f} degC and {f_hi:.3f} at {hi:.2f} degC, not "
                   f"0.5: move both temperatures {direction} T_opt. Check with `model.f_T`.")


class HalfVPD(Exercise, exercise_id="01.2"):
    """The VPD at which the VPD factor of f_VPD is 0.5, for kappa = -0.0004 Pa-1, c_a = C_a0."""

    title = "VPD and CO2"
    expects = "the VPD [Pa] at which the VPD factor of f_VPD is 0.5 (one number)"
    kappa: ClassVar[float] = -0.0004  # Pa-1, given in the question
    rel_tolerance: ClassVar[float] = 0.01

    def _factor(self, vpd: float) -> float:
        import torch

        from lue_spie.model import f_VPD
        from lue_spie.params import ILLUSTRATIVE

        def t(x: float) -> torch.Tensor:
            return torch.tensor(float(x), dtype=torch.float64)

        ca0 = ILLUSTRATIVE["Ca0"]  # c_a = C_a0: the CO2 ratio is 1 whatever its value
        vpd_part, _ = f_VPD(t(vpd), t(ca0), t(self.kappa), t(ca0), t(ILLUSTRATIVE["Ckappa"]),
                            t(ILLUSTRATIVE["Cm"]))
        return float(vpd_part)

    def _expected(self) -> float:
        from scipy.optimize import brentq

        return brentq(lambda v: self._factor(v) - 0.5, 0.0, 1e6, xtol=1e-8)

    def judge(self, answer: Any) -> Feedback:
        vpd = _number(answer, self.expects)
        expected = self._expected()
        if abs(vpd - expected) <= self.rel_tolerance * expected:
            return self.right("with c_a = C_a0 the CO2 term drops out and the VPD factor is an "
                              "exponential decay in VPD: it halves over a fixed VPD "
                              "interval, and a larger |kappa| halves it at a lower VPD.")
        if vpd <= 0:
            raise Hint("VPD is a deficit, a positive number (in Pa).")
        if abs(vpd * 1000.0 - expected) <= self.rel_tolerance * expected:
            raise Hint("check the units: VPD is in Pa in this model (kappa is in Pa-1), not "
                       "in kPa.")
        direction = "higher" if self._factor(vpd) > 0.5 else "lower"
        raise Hint(f"at VPD = {vpd:.4g} Pa the VPD factor is {self._factor(vpd):.3f}, not 0.5; "
                   f"the half-point is at a {direction} VPD. With c_a = C_a0 the factor is "
                   "exp(kappa VPD).")


class LagSeason(Exercise, exercise_id="01.3"):
    """Months of the largest fall and rise of GPP when alpha_T = 0.9 at the example site."""

    title = "Lags"
    expects = ("a pair (month of the largest fall, month of the largest rise) of the monthly "
               "mean GPP with alpha_T = 0.9 against the true vector, months as 1-12 or names")
    context = ("results", "site")
    #: A month counts as right when its mean change is within this share of the extreme one
    #: (two neighbouring months can be about equally affected).
    share: ClassVar[float] = 0.15

    def _monthly_change(self, results: Any, site: str) -> Any:
        import pandas as pd
        import torch

        from lue_spie.data import load_dataset, to_forcing
        from lue_spie.model import simulate
        from lue_spie.params import PARAMETERS, index

        example = load_dataset(Layout(_results(results)).example.folder)
        if example.truth is None or site not in set(example.truth["site"]):
            raise FileNotFoundError(f"{example.path}: no true parameters of site {site!r}")
        truth = example.truth.set_index("site").loc[site, list(PARAMETERS)]
        fb = to_forcing(example.site_day, sites=[site])
        true_vec = torch.tensor(truth.to_numpy(dtype=float, copy=True), dtype=torch.float64)
        lagged = true_vec.clone()
        lagged[index("alpha_T")] = 0.9
        gpp = simulate(fb.forcing, torch.stack([true_vec, lagged]))["GPP"]
        diff = (gpp[1] - gpp[0]).cpu().numpy()
        return pd.Series(diff, index=fb.dates).groupby(fb.dates.month).mean()

    def judge(self, answer: Any, *, results: Any, site: str) -> Feedback:
        if hasattr(answer, "tolist"):
            answer = answer.tolist()
        if isinstance(answer, str) or not isinstance(answer, Sequence) or len(answer) != 2:
            raise Hint(f"expected {self.expects}")
        fall, rise = _month(answer[0], "the month of the largest fall"), _month(
            answer[1], "the month of the largest rise")
        change = self._monthly_change(results, site)
        worst, best = float(change.min()), float(change.max())
        ok_fall = change.get(fall, 0.0) <= (1 - self.share) * worst < 0
        ok_rise = change.get(rise, 0.0) >= (1 - self.share) * best > 0
        name = {i: m.capitalize() for i, m in enumerate(_MONTHS, 1)}
        if ok_fall and ok_rise:
            return self.right("with alpha_T = 0.9 the temperature the model sees is a running "
                              "mean that lags behind the seasonal cycle: too cold while the "
                              "air warms, too warm while it cools, and most so where the "
                              "temperature changes fastest.")
        problems = []
        for label, m, ok in (("fall", fall, ok_fall), ("rise", rise, ok_rise)):
            if not ok:
                c = float(change.get(m, 0.0))
                sense = "rises" if c > 0 else "falls"
                problems.append(f"in {name[m]} (your month of the largest {label}) the mean "
                                f"GPP {sense} by {abs(c):.2f} gC m-2 d-1, and another month "
                                f"changes more")
        raise Hint("; ".join(problems) + ". Compare the monthly means of the two runs "
                   "(e.g. `pd.Series(diff, index=fb.dates).groupby(fb.dates.month).mean()`).")
