package persistent_test

import (
	"fmt"

	"github.com/lockproof/lockproof/persistent"
)

type User struct{ Name string }

func (*User) Kind() string { return "user" }
func (u *User) ID() string { return u.Name }

func ExampleKeyOf() {
	key, _ := persistent.KeyOf(&User{Name: "ada"})
	fmt.Println(key)
	byID, _ := persistent.KeyFor[*User]("ada") // no entity needed: how Load locks first
	fmt.Println(byID)
	_, err := persistent.KeyOf(&User{})
	fmt.Println(err)
	// Output:
	// user:ada
	// user:ada
	// persistent: invalid identity: empty user ID
}
