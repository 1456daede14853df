package changelog

// changelogDB names the package's db type where a test shadows it.
type changelogDB = db
