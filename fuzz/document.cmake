# The long-document tokenizer against one whole encode (module firewall, document.c).
alkfw_fuzz(fuzz_document_tokens SOURCES ${CMAKE_CURRENT_LIST_DIR}/fuzz_document_tokens.c
           LIBS firewall codebook model tokenizer formats common)
target_include_directories(fuzz_document_tokens PRIVATE ${ALKFW_ROOT}/include ${ALKFW_ROOT}/src)
target_compile_definitions(fuzz_document_tokens PRIVATE ALKFW_SOURCE_DIR="${ALKFW_ROOT}"
                           ALKFW_SHARED_DIR="${ALKFW_SHARED_DIR}")
