// Package refpds reads the data directory of a stopped reference PDS (npm @atproto/pds, the official
// distribution's /pds), read-only: its pds.env, account.sqlite, sequencer.sqlite, and each account's
// actors/<xx>/<did>/store.sqlite and key, and finds its blob files. It is the store package of that foreign
// format: every SQL statement on the reference's files is here, and nothing here writes anywhere (the files are
// opened immutable, or copied to a temporary directory first when a write-ahead log must be replayed). It can
// also read a running reference for a dry run (Options.WhileRunning): then the databases the reference has open
// are read as one more SQLite reader, and Open says which process has them (Dir.RunningPID).
//
// Open refuses a directory whose databases were not written by the schema this package reads (the
// migrations of @atproto/pds 0.5.35, see KnownMigrations), or that lacks a file it needs, with an error that
// says which and why. It does not touch this server's stores; package takeover does the conversion.
package refpds
