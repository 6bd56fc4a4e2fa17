package gopool_test

import (
	"fmt"
	"sync"

	"github.com/wsgate/wsgate/gopool"
)

func ExamplePool() {
	p, err := gopool.New(gopool.Config{Size: 4})
	if err != nil {
		panic(err)
	}
	var wg sync.WaitGroup
	results := make([]int, 8)
	for i := range results {
		wg.Add(1)
		if err := p.Schedule(func() { defer wg.Done(); results[i] = i * i }); err != nil {
			wg.Done()
		}
	}
	wg.Wait()
	p.Close()
	fmt.Println(results)
	// Output: [0 1 4 9 16 25 36 49]
}
