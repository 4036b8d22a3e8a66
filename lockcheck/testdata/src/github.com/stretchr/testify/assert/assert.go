// Package assert is a stub of testify's assert.
package assert

type TestingT interface {
	Errorf(format string, args ...any)
}

func NoError(t TestingT, err error, msgAndArgs ...any) bool         { return err == nil }
func ErrorIs(t TestingT, err, target error, msgAndArgs ...any) bool { return err != nil }
