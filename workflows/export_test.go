package workflows

// What the external tests (package workflows_test) need from inside the package: the save
// versions, to run the legacy pacing through the testsuite's OnGetVersion, and its intervals.
const (
	SaveVersion        = saveVersion
	SaveLocal          = saveLocal
	SaveFollowsReports = saveFollowsReports

	LegacySaveInterval = saveInterval
	LegacySaveQuiet    = saveQuiet
)
