// Command hello prints its first argument; collectortest's tests build it.
package main

import (
	"fmt"
	"os"
)

func main() {
	if len(os.Args) > 1 {
		fmt.Println("hello", os.Args[1])
	}
}
