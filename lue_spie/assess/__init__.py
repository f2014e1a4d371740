"""The assessment of paper section 2.3: GPP at four time scales, the likelihood P, parameters
and equifinality, and the structural-error twin."""
