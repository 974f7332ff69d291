// Package plcstore is the SQLite storage of the embedded PLC directory
// (identity/plcserver): the operation log of every DID, with the nullified
// flag and the time each operation was accepted.
//
// It owns the directory's database file and its migrations, and holds all of
// its SQL. It does not validate operations (plcserver does, before Append).
package plcstore
