// Package migrations holds cellgate's SQL schema as goose migrations embedded in the binary.
package migrations

import "embed"

// FS holds the NNNN_name.sql migration files.
//
//go:embed *.sql
var FS embed.FS
