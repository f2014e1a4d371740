"""Beyond the towers: parameter and GPP maps of a virtual continent."""
