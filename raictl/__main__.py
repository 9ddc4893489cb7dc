from raictl.entry import main

main()
