/*
 * config.h - the architecture of a detector model, read from a Hugging Face config.json.
 *
 * Supported families: Llama (LlamaForCausalLM), Mistral (MistralForCausalLM) and Qwen2
 * (Qwen2ForCausalLM, q/k/v projections with biases). Defaults for absent keys follow each
 * family's transformers configuration class. Keys that would change the computation in a way
 * this implementation does not follow (an unknown rope_scaling type, an active sliding
 * window, an activation other than SiLU, ...) are errors naming the key.
 */
#ifndef ALKFW_MODEL_CONFIG_H
#define ALKFW_MODEL_CONFIG_H

#include "alkfw.h"

#include <stddef.h>

typedef enum model_arch { MODEL_ARCH_LLAMA, MODEL_ARCH_MISTRAL, MODEL_ARCH_QWEN2 } model_arch;

/* rope_scaling types implemented (transformers' names). */
typedef enum model_rope_scaling {
    MODEL_ROPE_DEFAULT, /* none, or rope_type "default" */
    MODEL_ROPE_LINEAR,  /* inv_freq / factor */
    MODEL_ROPE_LLAMA3   /* Llama 3.1's frequency-dependent scaling */
} model_rope_scaling;

typedef struct model_config {
    char architecture[64]; /* architectures[0], or the family's class name when absent */
    model_arch arch;
    int hidden_size;
    int n_layers;
    int n_heads;
    int n_kv_heads;
    int head_dim; /* explicit head_dim, else hidden_size / n_heads */
    int intermediate_size;
    int vocab_size;
    int max_positions;
    double rope_theta;
    model_rope_scaling rope_scaling;
    double rope_factor;                 /* linear, llama3 */
    double rope_low_freq_factor;        /* llama3 */
    double rope_high_freq_factor;       /* llama3 */
    double rope_original_max_positions; /* llama3: original_max_position_embeddings */
    double rms_norm_eps;
    int tied_embeddings;
    int qkv_bias; /* q_proj, k_proj, v_proj carry biases */
    int o_bias;   /* o_proj carries a bias */
    int mlp_bias; /* gate_proj, up_proj, down_proj carry biases */
} model_config;

/* Parses len bytes of config.json text. Errors: ALKFW_ERR_FORMAT (not JSON, a key of the
 * wrong type, a missing required key, an inconsistent or absurd size), ALKFW_ERR_UNSUPPORTED
 * (an architecture or option not implemented); the message names the key. */
alkfw_status model_config_parse(const char *json, size_t len, model_config *out, alkfw_error *err);

/* Reads and parses DIR/config.json; errors as model_config_parse plus ALKFW_ERR_IO, each
 * message starting with the file's path. */
alkfw_status model_config_load(const char *dir, model_config *out, alkfw_error *err);

#endif
