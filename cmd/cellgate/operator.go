package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net/mail"
	"os"
	"strings"

	"github.com/cellgate/cellgate/credential"
	"github.com/cellgate/cellgate/store"
)

func runOperator(ctx context.Context, args []string) error {
	// create is the only operator command: `cellgate operator -h` shows its help.
	if len(args) > 0 && (args[0] == "-h" || args[0] == "-help" || args[0] == "--help") {
		args = append([]string{"create"}, args...)
	}
	if len(args) == 0 || args[0] != "create" {
		return errors.New("usage: cellgate operator create --email E [--password-stdin]")
	}
	var (
		cfg           common
		email         string
		passwordStdin bool
	)
	f := newFlags("operator create", "Creates an operator account. Without --password-stdin it generates a password and prints it once.")
	cfg.register(f, false)
	f.StringVar(&email, "email", "", "the operator's email address (required)")
	f.BoolVar(&passwordStdin, "password-stdin", false, "read the password from the first line of standard input")
	if err := f.parse(args[1:]); err != nil {
		return err
	}
	if err := cfg.check(); err != nil {
		return err
	}
	password := ""
	if passwordStdin {
		line, err := bufio.NewReader(os.Stdin).ReadString('\n')
		if err != nil && line == "" {
			return fmt.Errorf("read password from stdin: %w", err)
		}
		password = strings.TrimRight(line, "\r\n")
	}
	st, err := openStore(ctx, cfg.databaseURL)
	if err != nil {
		return err
	}
	defer st.Close()
	op, generated, err := createOperator(ctx, st, email, password)
	if err != nil {
		return err
	}
	fmt.Printf("operator %s created (id %s)\n", op.Email, op.ID)
	if generated != "" {
		fmt.Printf("password: %s\n(shown once; it is stored only as a bcrypt hash)\n", generated)
	}
	return nil
}

// createOperator validates and stores an operator. With an empty password it generates one and
// returns it.
func createOperator(ctx context.Context, st *store.Store, email, password string) (op store.Operator, generated string, err error) {
	email = strings.TrimSpace(email)
	addr, err := mail.ParseAddress(email)
	if err != nil || addr.Address != email || len(email) > 254 {
		return op, "", fmt.Errorf("--email %q is not a plain email address", email)
	}
	if password == "" {
		password = credential.NewPassword()
		generated = password
	} else if err := credential.Validate(password); err != nil {
		return op, "", fmt.Errorf("password: %w", err)
	}
	hash, err := credential.HashPassword(password)
	if err != nil {
		return op, "", err
	}
	op, err = st.CreateOperator(ctx, strings.ToLower(email), hash)
	if errors.Is(err, store.ErrConflict) {
		return op, "", fmt.Errorf("an operator with email %s already exists", email)
	}
	return op, generated, err
}
