"""Teaching with the book: student and teacher copies (:mod:`~lue_spie.teaching.course`) and
the self-checking exercises (:mod:`~lue_spie.teaching.exercises`)."""
