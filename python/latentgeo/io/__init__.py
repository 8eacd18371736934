"""Files: the one ``.npz`` layout of saved objects (:mod:`.npz`) and pythae readers (:mod:`.pythae`)."""
