from wukongim.cli import main

raise SystemExit(main())
