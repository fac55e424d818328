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

// operatorUsage lists the operator commands.
const operatorUsage = "usage: cellgate operator create --email E [--password-stdin] [--admin] | operator admin --email E [--revoke]"

func runOperator(ctx context.Context, args []string) error {
	// `cellgate operator -h` shows create's help.
	if len(args) > 0 && (args[0] == "-h" || args[0] == "-help" || args[0] == "--help") {
		args = append([]string{"create"}, args...)
	}
	if len(args) == 0 {
		return errors.New(operatorUsage)
	}
	switch args[0] {
	case "create":
		return runOperatorCreate(ctx, args[1:])
	case "admin":
		return runOperatorAdmin(ctx, args[1:])
	}
	return errors.New(operatorUsage)
}

func runOperatorCreate(ctx context.Context, args []string) error {
	var (
		cfg           common
		email         string
		passwordStdin bool
		admin         bool
	)
	f := newFlags("operator create", "Creates an operator account. Without --password-stdin it generates a password and prints it once.")
	cfg.register(f, false)
	f.StringVar(&email, "email", "", "the operator's email address (required)")
	f.BoolVar(&passwordStdin, "password-stdin", false, "read the password from the first line of standard input")
	f.BoolVar(&admin, "admin", false, "make the operator an admin, who sees platform-wide figures (the password migration's)")
	if err := f.parse(args); err != nil {
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
	op, generated, err := createOperator(ctx, st, email, password, admin)
	if err != nil {
		return err
	}
	role := "operator"
	if admin {
		role = "admin operator"
	}
	fmt.Printf("%s %s created (id %s)\n", role, op.Email, op.ID)
	if generated != "" {
		fmt.Printf("password: %s\n(shown once; it is stored only as a bcrypt hash)\n", generated)
	}
	return nil
}

// runOperatorAdmin makes an existing operator an admin, or (--revoke) an operator like any
// other.
func runOperatorAdmin(ctx context.Context, args []string) error {
	var (
		cfg    common
		email  string
		revoke bool
	)
	f := newFlags("operator admin", "Makes an operator an admin, who sees platform-wide figures (the password migration's), or with --revoke takes that away.")
	cfg.register(f, false)
	f.StringVar(&email, "email", "", "the operator's email address (required)")
	f.BoolVar(&revoke, "revoke", false, "take the admin role away")
	if err := f.parse(args); err != nil {
		return err
	}
	if err := cfg.check(); err != nil {
		return err
	}
	if email == "" {
		return errors.New("--email is required")
	}
	st, err := openStore(ctx, cfg.databaseURL)
	if err != nil {
		return err
	}
	defer st.Close()
	op, err := st.OperatorByEmail(ctx, strings.TrimSpace(email))
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("no operator with email %s", email)
	}
	if err != nil {
		return err
	}
	if err := st.SetOperatorAdmin(ctx, op.ID, !revoke); err != nil {
		return err
	}
	if revoke {
		fmt.Printf("%s is no longer an admin\n", op.Email)
	} else {
		fmt.Printf("%s is an admin\n", op.Email)
	}
	return nil
}

// createOperator validates and stores an operator, an admin when admin is set. With an empty
// password it generates one and returns it.
func createOperator(ctx context.Context, st *store.Store, email, password string, admin bool) (op store.Operator, generated string, err error) {
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
	if err == nil && admin {
		err = st.SetOperatorAdmin(ctx, op.ID, true)
		op.IsAdmin = err == nil
	}
	return op, generated, err
}
