package redisprovider

import (
	"context"
	"errors"
	"hash/fnv"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/lockproof/lockproof/internal/redistest"
	"github.com/lockproof/lockproof/provider"
)

var redisNil = redis.Nil

// keysByConcat is keys as it was written before it built its four keys in
// one string: the reference that keys must match.
func keysByConcat(prefix, key string) (lock, fence, queue, alive string) {
	tag := key
	if strings.ContainsAny(key, "{}") {
		h := fnv.New64a()
		h.Write([]byte(key))
		tag = "#" + strconv.FormatUint(h.Sum64(), 16)
		lock = prefix + "{" + tag + "}" + key
	} else {
		lock = prefix + "{" + key + "}"
	}
	return lock, prefix + "{" + slotTag(slotOf(tag)) + "}:fences", lock + ":queue", lock + ":alive"
}

func TestKeysMatchConcatenation(t *testing.T) {
	for _, prefix := range []string{DefaultPrefix, "", "p:"} {
		for _, key := range []string{"k", "user:42", "a{b}c", "{", "}", "x{}", "ü:☃", strings.Repeat("z", 300)} {
			p := &Provider{prefix: prefix}
			l, f, q, a := p.keys(key)
			wl, wf, wq, wa := keysByConcat(prefix, key)
			if l != wl || f != wf || q != wq || a != wa {
				t.Errorf("keys(%q) with prefix %q = %q %q %q %q, want %q %q %q %q", key, prefix, l, f, q, a, wl, wf, wq, wa)
			}
		}
	}
}

// TestFastPathsReadHoldFormat: the release fast paths (release.lua's and
// Redlock's), which run before hold.lua's functions exist, read holds with
// hold.lua's constants, and no script but hold.lua spells the hold's
// pattern or its waited-for byte itself.
func TestFastPathsReadHoldFormat(t *testing.T) {
	for name, src := range map[string]string{"release.lua": releaseSrc, "redlock_release.lua": redlockReleaseSrc} {
		fast, _, _ := strings.Cut(src, "\n--#hold\n")
		if !strings.Contains(fast, "string.match(v, HOLD)") || !strings.Contains(fast, "HOLD_WAITED") {
			t.Errorf("%s's fast path does not read the hold with HOLD and HOLD_WAITED", name)
		}
	}
	if !strings.Contains(holdSrc, `local HOLD = '^([1-9]%d*) (%S+) (.+)$'`) {
		t.Errorf("hold.lua does not define HOLD")
	}
	entries, err := os.ReadDir("scripts")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.Name() == "hold.lua" {
			continue
		}
		b, err := os.ReadFile(filepath.Join("scripts", e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if src := string(b); strings.Contains(src, "%d*) (%S+) (.+)$") || strings.Contains(src, "%d* (%S+) (.+)$") || strings.Contains(src, "== 43") || strings.Contains(src, "~= 43") {
			t.Errorf("%s spells out the hold format instead of using hold.lua's constants", e.Name())
		}
	}
	// Every script starts with the constants, so a fast path can use them.
	for name, src := range map[string]string{"release": holdSource(releaseSrc), "acquire": holdSource(acquireSrc), "plain": holdSource("return 1")} {
		if !strings.HasPrefix(src, holdSrc[:strings.Index(holdSrc, "\n--#functions\n")]) {
			t.Errorf("the %s script does not start with hold.lua's constants", name)
		}
	}
}

// TestReleaseFastPathValues: a release through either path frees exactly
// the holds of its token (marked or not, leaving the marker a re-sent
// release finds) and leaves values that only look like holds as they are.
func TestReleaseFastPathValues(t *testing.T) {
	t.Parallel()
	c := redistest.Server(t).Client(t)
	p, err := New(c, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for i, tc := range []struct {
		value string
		freed bool
	}{
		{"7 n tok", true},
		{"7 n+ tok", true},    // marked: the slow path, nobody in the queue
		{"12 n a tok", false}, // token "a tok"
		{"07 n tok", false},   // a fence with a leading zero is not a hold
		{"x n tok", false},
		{"7 n tokX", false},
		{"7 tok", false},
	} {
		key := "rfp" + strconv.Itoa(i)
		lock, _, _, _ := p.keys(key)
		if err := c.Set(ctx, lock, tc.value, time.Minute).Err(); err != nil {
			t.Fatal(err)
		}
		err := p.Release(ctx, key, "tok")
		got, gerr := c.Get(ctx, lock).Result()
		if tc.freed {
			marker, merr := c.Get(ctx, releaseMarker(lock, "tok")).Result()
			if err != nil || !errors.Is(gerr, redisNil) || merr != nil || marker == "" {
				t.Errorf("release of %q = %v; value %q, %v; marker %q, %v; want freed with a marker", tc.value, err, got, gerr, marker, merr)
			}
			continue
		}
		if !errors.Is(err, provider.ErrNotHeld) || gerr != nil || got != tc.value {
			t.Errorf("release of %q = %v, value after %q, %v; want ErrNotHeld and the value untouched", tc.value, err, got, gerr)
		}
	}
}
