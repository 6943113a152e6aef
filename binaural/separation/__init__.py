"""A trained experiment as a separator (:mod:`.separator`): files, folders, blocks and streams
(``separate.py``'s library)."""
