package redisprovider

import (
	"strings"
	"testing"
)

// TestCRC16: the checksum is Redis Cluster's (the check value of
// CRC16-XMODEM, and the slot of the example key in the Cluster spec).
func TestCRC16(t *testing.T) {
	if got := crc16("123456789"); got != 0x31C3 {
		t.Fatalf("crc16(123456789) = %#x, want 0x31c3", got)
	}
	if got := slotOf("foo"); got != 12182 { // CLUSTER KEYSLOT foo
		t.Fatalf("slot of foo = %d, want 12182", got)
	}
}

// TestSlotTags: every slot has a tag, the tag is in that slot, and it is
// safe inside a hash tag (no brace).
func TestSlotTags(t *testing.T) {
	seen := make(map[string]bool, numSlots)
	for s := range uint16(numSlots) {
		tag := slotTag(s)
		if tag == "" || len(tag) > 4 || strings.ContainsAny(tag, "{}") {
			t.Fatalf("slot %d: tag %q", s, tag)
		}
		if got := slotOf(tag); got != s {
			t.Fatalf("tag %q of slot %d is in slot %d", tag, s, got)
		}
		if seen[tag] {
			t.Fatalf("tag %q used twice", tag)
		}
		seen[tag] = true
	}
}

// TestFenceCounterSlot: a key's counter is in the key's slot, keys with
// braces included, and keys of one slot share it.
func TestFenceCounterSlot(t *testing.T) {
	p := &Provider{prefix: DefaultPrefix}
	for _, key := range []string{"a", "user:42", "user:{42}", "{x}", "a}b{c", "}", strings.Repeat("k", 300)} {
		lock, fence, _, _ := p.keys(key)
		if got, want := keySlot(fence), keySlot(lock); got != want {
			t.Fatalf("key %q: counter %q in slot %d, lock %q in slot %d", key, fence, got, lock, want)
		}
	}
	other := slotTag(slotOf("user:42")) // another key in the slot of "user:42"
	_, f1, _, _ := p.keys("user:42")
	_, f2, _, _ := p.keys(other)
	if other == "user:42" || f1 != f2 {
		t.Fatalf("keys of one slot draw from %q and %q", f1, f2)
	}
}

// keySlot is the slot of a Redis key name, by the Cluster spec's rule
// (written out here independently of keys()).
func keySlot(k string) uint16 {
	if i := strings.IndexByte(k, '{'); i >= 0 {
		if j := strings.IndexByte(k[i+1:], '}'); j > 0 {
			k = k[i+1 : i+1+j]
		}
	}
	return slotOf(k)
}

// slotTag returns the tag of slot s as a string (keys() writes its bytes
// in place).
func slotTag(s uint16) string {
	t := &slotTags()[s]
	n := 0
	for n < len(t) && t[n] != 0 {
		n++
	}
	return string(t[:n])
}
