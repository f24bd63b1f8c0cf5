import DemucsCLI

DemucsCtl.main()
