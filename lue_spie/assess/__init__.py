"""The assessment of paper section 2.3: GPP at four time scales, the likelihood P, parameters
and equifinality, and the structural-error twin.

- :mod:`~lue_spie.assess.settings`: :class:`AssessSettings`;
- :mod:`~lue_spie.assess.inputs`: a results folder read back (:func:`load_results`);
- :mod:`~lue_spie.assess.gpp`, :mod:`~lue_spie.assess.likelihood`,
  :mod:`~lue_spie.assess.parameters`: GPP skill, the likelihood P, parameters and equifinality;
- :mod:`~lue_spie.assess.assessment`: all of it for one results folder (:func:`assess_results`);
- :mod:`~lue_spie.assess.twin`: the structural-error twin;
- :mod:`~lue_spie.assess.step`: :func:`run`, the step of ``lue-spie assess``
  (:mod:`~lue_spie.assess.cli`): tables and figures into the assessment folder.
"""

from lue_spie.assess.assessment import Assessment, assess_results
from lue_spie.assess.claims import compare_with_paper, findings
from lue_spie.assess.inputs import SITE_CALIB, AssessmentInputs, load_results
from lue_spie.assess.settings import AssessSettings
from lue_spie.assess.step import run, write_assessment

__all__ = ["AssessSettings", "Assessment", "AssessmentInputs", "SITE_CALIB", "assess_results",
           "compare_with_paper", "findings", "load_results", "run", "write_assessment"]
