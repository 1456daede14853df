// Command broken does not compile; collectortest's tests check that Build
// reports why.
package main

func main() {
	undefinedOnPurpose()
}
