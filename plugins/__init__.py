"""ferbench's built-in plugins, installed under the import name ``ferbench_plugins``.

Each sub-module is registered through the ``ferbench`` entry-point group, exactly as a third-party
plugin is. Plugin modules import nothing heavy at import time: models and data readers live in
sub-modules that specs name as strings.
"""
