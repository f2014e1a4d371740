"""Teaching with the book: the self-checking exercises (:mod:`~lue_spie.teaching.exercises`),
the exercise convention of the chapters (:mod:`~lue_spie.teaching.convention`), the student
and teacher copies (:mod:`~lue_spie.teaching.copies`), the course made of them
(:mod:`~lue_spie.teaching.course`) and its command, ``lue-spie course``
(:mod:`~lue_spie.teaching.cli`)."""
