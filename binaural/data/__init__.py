"""The Binaural WSJ0-mix dataset, from utterances and HRTFs to the files a model trains on.

=========================  ==================================================================
:mod:`.layout`             where everything lies on disk: splits, rates, folders, names
:mod:`.metadata`           the official and own-mode metadata: reading, drawing, writing
:mod:`.hrtf`               HRTF sets: CIPIC WAV, SOFA, the spherical head
:mod:`.rooms`              binaural room impulse responses: BRIR Sim Set, simulated rooms
:mod:`.noise`              DEMAND noise for the noisy variant (WHAM!-style)
:mod:`.mixing`             resampling, spatialisation, mixing: the arithmetic of a mixture
:mod:`.variants`           the data variants (clean, noise, reverb) as classes
:mod:`.sources`            the public archives the dataset is made from
:mod:`.record`             the generation options and the dataset record of a tree
:mod:`.generation`         building a tree (``create_binaural_wsj0mix.py``, ``train.py``)
:mod:`.manifests`          SpeechBrain CSV manifests of a tree
:mod:`.dynamic_mixing`     training mixtures drawn on the fly
:mod:`.synthetic_speech`   a synthetic corpus in the WSJ0 layout, for running offline
=========================  ==================================================================
"""
