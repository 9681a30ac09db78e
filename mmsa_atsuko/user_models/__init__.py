"""Model files of your own, kept outside the checkout: the folders of $MMSA_ATSUKO_MODELS (`--models DIR`).

`discovery` imports them for the registry (`import_folders`) and knows which model each file registered;
`source` is what a run records of their code (`model_source`, since no git knows these files) and how a
recorded source compares with today's files (`source_changes`, `changed_files`, `recorded_files`). Each caller
imports from the module that holds the name; this package re-exports nothing.
"""
