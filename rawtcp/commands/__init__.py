"""Click command modules, one per area; rawtcp/cli.py loads them lazily."""
