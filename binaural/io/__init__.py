"""Files: atomic writes and locks (:mod:`.atomic`), audio reading and writing (:mod:`.audio`),
resumable, verified downloads (:mod:`.download`)."""
