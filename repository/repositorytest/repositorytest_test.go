package repositorytest_test

import (
	"testing"

	"go.uber.org/goleak"

	"github.com/lockproof/lockproof/locked"
	"github.com/lockproof/lockproof/memprovider"
	"github.com/lockproof/lockproof/repository"
	"github.com/lockproof/lockproof/repository/repositorytest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// newService returns a Service on a new in-memory provider; both are closed
// when t ends, the Service first.
func newService(t *testing.T) *locked.Service {
	t.Helper()
	p := memprovider.New()
	t.Cleanup(func() {
		if err := p.Close(); err != nil {
			t.Errorf("memprovider Close: %v", err)
		}
	})
	svc, err := locked.New(p, nil)
	if err != nil {
		t.Fatalf("locked.New: %v", err)
	}
	t.Cleanup(func() {
		if err := svc.Close(); err != nil {
			t.Errorf("Service Close: %v", err)
		}
	})
	return svc
}

func TestMemory(t *testing.T) {
	repositorytest.Harness{
		NewRepo: func(t *testing.T) repository.Repository[*repositorytest.Entity] {
			return repository.NewMemory[*repositorytest.Entity]()
		},
		NewService:        newService,
		NewForeignService: newService, // a new provider: another lock store
	}.Run(t)
}
