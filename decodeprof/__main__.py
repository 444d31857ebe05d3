from decodeprof.cli import main

main()
