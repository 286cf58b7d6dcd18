package dev.pocketbert.demo

import android.content.Context
import dev.pocketbert.embedding.Embeddings
import dev.pocketbert.tokenizer.BertTokenizer
import dev.pocketbert.tokenizer.Encoding
import dev.pocketbert.tokenizer.Truncation
import org.json.JSONObject
import kotlin.math.exp

/** One inference: named float outputs and how long the runtime took. */
class Result(val outputs: Map<String, FloatArray>, val millis: Double)

/**
 * A .tflite export of pocketbert (model.tflite, vocab.txt, manifest.json, labels.txt in the
 * app's assets) on LiteRT: the CompiledModel API on the [accelerator] asked for, else the
 * Interpreter (see [Backends.open]); [backendName] says which one runs. Static shapes: every
 * input is padded to the manifest's sequence length, as the export was validated.
 */
class BertModel(
    context: Context,
    val threads: Int,
    useXnnpack: Boolean = true,
    val accelerator: AcceleratorChoice = AcceleratorChoice.CPU,
) : AutoCloseable {
    val manifest = JSONObject(context.assets.open("manifest.json").bufferedReader().readText())
    val tokenizer: BertTokenizer = context.assets.open("vocab.txt").use { BertTokenizer.fromVocab(it, true) }
    val labels: List<String> = runCatching {
        context.assets.open("labels.txt").bufferedReader().readLines().filter { it.isNotBlank() }
    }.getOrDefault(emptyList())
    val task: String = manifest.getString("task")
    val sequenceLength: Int = manifest.getJSONArray("inputs").getJSONObject(0).getJSONArray("shape").let { it.getInt(it.length() - 1) }
    private val inputNames = (0 until manifest.getJSONArray("inputs").length()).map {
        manifest.getJSONArray("inputs").getJSONObject(it).getString("name")
    }
    private val outputShapes: Map<String, IntArray> = (0 until manifest.getJSONArray("outputs").length()).associate {
        val output = manifest.getJSONArray("outputs").getJSONObject(it)
        val shape = output.getJSONArray("shape")
        output.getString("name") to IntArray(shape.length()) { i -> shape.getInt(i) }
    }
    private val opened = Backends.open(context, accelerator, threads, useXnnpack, inputNames, outputShapes)
    private val backend: InferenceBackend = opened.backend

    /** Opening time of the backend in use (attempts that failed before it are logged, not counted). */
    val initMillis: Double = opened.initMillis

    /** "LiteRT CompiledModel GPU", "LiteRT CompiledModel CPU" or "LiteRT Interpreter XNNPACK". */
    val backendName: String get() = backend.name

    fun encode(text: String, pair: String? = null): Encoding =
        tokenizer.encode(text, pair, sequenceLength, Truncation.LONGEST_FIRST, true)

    fun run(encoding: Encoding): Result {
        val arrays = mapOf(
            "input_ids" to encoding.inputIds,
            "attention_mask" to encoding.attentionMask,
            "token_type_ids" to encoding.tokenTypeIds,
        )
        return backend.run(inputNames.associateWith { arrays.getValue(it) })  // each [1, S] int32
    }

    /** Top-k tokens for every [MASK]: (token, probability) pairs. */
    fun fillMask(text: String, topK: Int = 5): Pair<List<List<Pair<String, Float>>>, Double> {
        val encoding = encode(text)
        val result = run(encoding)
        val logits = result.outputs.getValue("logits")
        val vocab = logits.size / sequenceLength
        val answers = encoding.inputIds.indices.filter { encoding.inputIds[it] == tokenizer.maskId }.map { position ->
            val probs = softmax(logits, position * vocab, vocab)
            probs.indices.sortedByDescending { probs[it] }.take(topK).map { tokenizer.idToToken(it) to probs[it] }
        }
        return answers to result.millis
    }

    /** Labels with probabilities, best first. */
    fun classify(text: String): Pair<List<Pair<String, Float>>, Double> {
        val result = run(encode(text))
        val probs = softmax(result.outputs.getValue("logits"), 0, result.outputs.getValue("logits").size)
        val ranked = probs.indices.sortedByDescending { probs[it] }.map { (labels.getOrNull(it) ?: "LABEL_$it") to probs[it] }
        return ranked to result.millis
    }

    /**
     * One unit-length vector for [text]: a sentence-embedding export's pooled
     * `sentence_embedding`, or for a feature-extraction export the mean of its token states
     * over the real tokens (pooled here, as the graph would). Java's pooling is checked
     * against Python's on the JVM (EmbeddingCheck).
     */
    fun embed(text: String): Pair<FloatArray, Double> {
        val encoding = encode(text)
        val result = run(encoding)
        val pooled = result.outputs["sentence_embedding"] ?: result.outputs["last_hidden_state"]?.let { tokens ->
            Embeddings.meanPool(tokens, encoding.attentionMask, tokens.size / sequenceLength)
        } ?: error("a $task export has no sentence_embedding or last_hidden_state output")
        return Embeddings.normalize(pooled) to result.millis
    }

    /** [documents] ranked by cosine similarity to [query], best first, and the total inference time. */
    fun search(query: String, documents: List<String>): Pair<List<Pair<String, Double>>, Double> {
        val (queryVector, queryMillis) = embed(query)
        val embedded = documents.map { embed(it) }
        val vectors = embedded.map { it.first }.toTypedArray()
        val order = Embeddings.nearest(queryVector, vectors, vectors.size, -1)
        val ranked = order.map { documents[it] to Embeddings.cosine(queryVector, vectors[it]) }
        return ranked to queryMillis + embedded.sumOf { it.second }
    }

    override fun close() = backend.close()

    companion object {
        fun softmax(values: FloatArray, offset: Int, length: Int): FloatArray {
            val max = (offset until offset + length).maxOf { values[it] }
            val exps = FloatArray(length) { exp((values[offset + it] - max).toDouble()).toFloat() }
            val sum = exps.sum()
            return FloatArray(length) { exps[it] / sum }
        }
    }
}
