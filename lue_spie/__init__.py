"""lue-spie: reproducible companion to SPIE (Bao et al., JAMES, 2023).

Simultaneous Parameter Inversion and Extrapolation of light-use-efficiency (LUE) model
parameters: a neural network predicts the 13 LUE parameters from site properties and is
trained through the model on GPP error.

Modules map onto the paper's sections: :mod:`lue_spie.params` and :mod:`lue_spie.model`
(2.1), :mod:`lue_spie.cost` and :mod:`lue_spie.calibrate` (2.1.1), :mod:`lue_spie.data`
(data), and so on.
"""

import os as _os
import sys as _sys

# Idle OpenMP threads sleep instead of spinning. The fused evaluation kernel (Numba's OpenMP
# layer) shares torch's libgomp; with the default wait policy a kernel thread keeps spinning
# after each population while torch trains SPIE on the next core, which made SPIE's training
# several times slower on two cores (benchmarks/RESULTS.md, "OpenMP wait policy"). libgomp
# reads the variable when it is loaded (with torch), so it is set before anything imports
# torch; a process that imported torch first keeps the kernel on one thread instead
# (lue_spie.execution.apply_threads). A value the user set is kept.
OMP_PASSIVE: bool = ("torch" not in _sys.modules
                     or _os.environ.get("OMP_WAIT_POLICY", "").upper() == "PASSIVE")
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"
