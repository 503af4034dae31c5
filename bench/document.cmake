# Long documents and streams: MB/s, streamed chunk against re-screened prefix, peak RSS.
alkfw_bench(bench_document SOURCES ${CMAKE_CURRENT_LIST_DIR}/document.c
            LIBS firewall codebook model tokenizer formats common)
