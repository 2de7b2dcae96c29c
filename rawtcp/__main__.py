from rawtcp.cli import main

main()
