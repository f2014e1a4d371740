"""lue-spie: reproducible companion to SPIE (Bao et al., JAMES, 2023).

Simultaneous Parameter Inversion and Extrapolation of light-use-efficiency (LUE) model
parameters: a neural network predicts the 13 LUE parameters from site properties and is
trained through the model on GPP error.

Modules map onto the paper's sections: :mod:`lue_spie.params` and :mod:`lue_spie.model`
(2.1), :mod:`lue_spie.cost` and :mod:`lue_spie.calibrate` (2.1.1), :mod:`lue_spie.data`
(data), and so on.
"""

__version__ = "0.1.0"
