from stars_cpp.cli import main

raise SystemExit(main())
