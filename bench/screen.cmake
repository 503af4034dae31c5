alkfw_bench(bench_screen SOURCES screen.c LIBS firewall codebook model tokenizer formats common)
