"""Geodesic solvers: ``geodesic``/``geodesics`` (:mod:`.api`), distance matrices
(:mod:`.distances`), their options (:mod:`.options`), the chunk runner and failures of pairs
(:mod:`.runner`), initial curves (:mod:`.initial`), results (:mod:`.results`) and the seed's
neural geodesics (:mod:`.neural`)."""
