// Package testbackend starts throwaway backends for Coffer's tests and
// benchmarks: a PostgreSQL server (initdb and pg_ctl from the installed
// server binaries, run as the postgres OS user when the caller is root)
// and versitygw, an S3-compatible gateway over a directory.
//
// Each binds 127.0.0.1 on a free port, keeps everything in a temporary
// directory of its own, is stopped by its PID, and can be halted and
// started again on the same port and data, for outage tests. Nothing here
// is used by the coffer binary itself.
//
// A missing binary is an error that says what to install, never a silent
// skip: tests that need a backend fail without it.
package testbackend
