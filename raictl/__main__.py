from raictl.cli import main

main()
