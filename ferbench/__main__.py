"""``python -m ferbench`` runs the command line."""
from .cli import main

main()
