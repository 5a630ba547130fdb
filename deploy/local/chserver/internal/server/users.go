package server

// Users: who may connect, with which password, in which role. There is no anonymous access:
// a user without a password is refused at start.

import (
	"bufio"
	"crypto/subtle"
	"errors"
	"fmt"
	"os"
	"strings"
)

// User is a user's password and role (a role's name, as in Roles.Lookup).
type User struct {
	Password string
	Role     string
}

// ErrUsers reports a users list or file that cannot be used.
var ErrUsers = errors.New("users")

// ParseUsers reads "name:password:role,name2:password2:role2". A password may hold ':' (the
// role is what follows the last one) but not ','; use a users file (ReadUsersFile) for any
// other password.
func ParseUsers(s string) (map[string]User, error) {
	users := map[string]User{}
	for _, item := range strings.Split(s, ",") {
		if item = strings.TrimSpace(item); item == "" {
			continue
		}
		if err := addUser(users, item); err != nil {
			return nil, err
		}
	}
	return users, nil
}

// ReadUsersFile reads a users file: one name:password:role per line, blank lines and lines
// starting with # ignored. The file holds passwords: one readable by group or others is
// refused, as is one that cannot be read.
func ReadUsersFile(path string) (map[string]User, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("%w file: %v", ErrUsers, err)
	}
	defer func() { _ = f.Close() }()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("%w file: %v", ErrUsers, err)
	}
	if st.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("%w file %s: mode %04o lets group or others read passwords: chmod 600 it", ErrUsers, path, st.Mode().Perm())
	}
	users := map[string]User{}
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if err := addUser(users, line); err != nil {
			return nil, fmt.Errorf("%s line %d: %w", path, n, err)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%w file %s: %v", ErrUsers, path, err)
	}
	return users, nil
}

func addUser(users map[string]User, item string) error {
	name, rest, ok := strings.Cut(item, ":")
	i := strings.LastIndexByte(rest, ':')
	if !ok || name == "" || i < 0 {
		return fmt.Errorf("%w: %q is not name:password:role", ErrUsers, redact(item))
	}
	u := User{Password: rest[:i], Role: rest[i+1:]}
	switch {
	case !plainName.MatchString(name):
		return fmt.Errorf("%w: user name %q is not [A-Za-z_][A-Za-z0-9_]*", ErrUsers, name)
	case u.Password == "":
		return fmt.Errorf("%w: user %s has an empty password: every user needs one (there is no anonymous access)", ErrUsers, name)
	case u.Role == "":
		return fmt.Errorf("%w: user %s has no role (name:password:role, role admin, writer or analyst)", ErrUsers, name)
	}
	if _, dup := users[name]; dup {
		return fmt.Errorf("%w: user %s is listed twice", ErrUsers, name)
	}
	users[name] = u
	return nil
}

// redact keeps the name of a name:password… item, never its password.
func redact(item string) string {
	name, _, _ := strings.Cut(item, ":")
	return name + ":…"
}

// authenticate checks a user's password in constant time and returns the user's role.
func (s *Server) authenticate(user, password string) (*Role, error) {
	u, ok := s.cfg.Users[user]
	if !ok || subtle.ConstantTimeCompare([]byte(u.Password), []byte(password)) != 1 {
		return nil, newQueryError(codeAuthFailed, "%s: Authentication failed: password is incorrect, or there is no user with such name.", user)
	}
	r, _ := s.cfg.Roles.Lookup(u.Role)
	return r, nil
}

// defaultDatabase is the current database of a client of role that names none: "default",
// or the Vigie database for a role without a grant on every database.
func (s *Server) defaultDatabase(role *Role) string {
	if role.anyDatabase || s.cfg.Database == "" {
		return "default"
	}
	return s.cfg.Database
}
