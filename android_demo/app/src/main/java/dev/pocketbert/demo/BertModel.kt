package dev.pocketbert.demo

import android.content.Context
import dev.pocketbert.embedding.Embeddings
import dev.pocketbert.tokenizer.BertTokenizer
import dev.pocketbert.tokenizer.Encoding
import dev.pocketbert.tokenizer.SequenceBuckets
import dev.pocketbert.tokenizer.Truncation
import org.json.JSONObject
import kotlin.math.exp

/**
 * One inference: named float outputs and how long the runtime took. From [BertModel.run] also
 * what ran: the [sequenceLength] of the signature, its [signature] name for a bucketed file
 * ("seq_32"; null for a single-length file) and the input's real [tokens].
 */
class Result(
    val outputs: Map<String, FloatArray>,
    val millis: Double,
    val sequenceLength: Int = 0,
    val signature: String? = null,
    val tokens: Int = 0,
) {
    /** Positions along the sequence axis of [outputs]: a bucket's are cut to the real tokens. */
    val positions: Int get() = if (signature != null) tokens else sequenceLength

    /** ", bucket seq_32 (12 tokens)" for a bucketed file; "" otherwise (the line reads as before). */
    val bucketNote: String get() = signature?.let { ", bucket $it ($tokens tokens)" } ?: ""

    companion object {
        /** For several runs: ", buckets seq_16 x3, seq_32 x1"; "" for a single-length file. */
        fun bucketsNote(results: List<Result>): String {
            val counts = results.mapNotNull { it.signature }.groupingBy { it }.eachCount()
            if (counts.isEmpty()) return ""
            return ", buckets " + counts.entries.sortedBy { it.key.removePrefix(SequenceBuckets.PREFIX).toIntOrNull() ?: 0 }
                .joinToString(", ") { (name, count) -> "$name x$count" }
        }
    }
}

/**
 * A .tflite export of pocketbert (model.tflite, vocab.txt, manifest.json, labels.txt in the
 * app's assets) on LiteRT: the CompiledModel API on the [accelerator] asked for, else the
 * Interpreter (see [Backends.open]); [backendName] says which one runs. Static shapes: a
 * single-length file gets every input padded to the manifest's sequence length, as the export
 * was validated; a bucketed file (spec.buckets in the manifest, signatures seq_16, seq_32 ...)
 * gets it padded to the smallest bucket that holds it, runs that signature, and its outputs
 * with a sequence axis are cut back to the real tokens (see [SequenceLayout]).
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
    private val layout = SequenceLayout(manifest)

    /** The file's sequence buckets, ascending; empty for a single-length file. */
    val buckets: IntArray get() = layout.buckets.copyOf()

    /** The most tokens an input keeps: the file's static length, or its largest bucket. */
    val sequenceLength: Int = layout.maxLength
    private val inputNames = layout.inputNames
    private val opened = Backends.open(context, accelerator, threads, useXnnpack, inputNames, layout.signatures)
    private val backend: InferenceBackend = opened.backend

    /** Opening time of the backend in use (attempts that failed before it are logged, not counted). */
    val initMillis: Double = opened.initMillis

    /** "LiteRT CompiledModel GPU", "LiteRT CompiledModel CPU" or "LiteRT Interpreter XNNPACK". */
    val backendName: String get() = backend.name

    /**
     * The model's input for [text] (and [pair]): truncated to [sequenceLength] and padded to it,
     * or for a bucketed file padded to the smallest bucket that holds it.
     */
    fun encode(text: String, pair: String? = null): Encoding =
        if (layout.bucketed) {
            SequenceBuckets.encode(tokenizer, text, pair, layout.buckets)
        } else {
            tokenizer.encode(text, pair, sequenceLength, Truncation.LONGEST_FIRST, true)
        }

    /**
     * Runs [encoding] (from [encode]) in its signature: the file's only one, or the bucket of its
     * length; a bucket's outputs with a sequence axis come back cut to the real tokens.
     */
    fun run(encoding: Encoding): Result {
        val signature = layout.signatureFor(encoding.length())
        val input = if (layout.bucketed) SequenceBuckets.padded(encoding, signature.length, tokenizer.padId) else encoding
        val arrays = mapOf(
            "input_ids" to input.inputIds,
            "attention_mask" to input.attentionMask,
            "token_type_ids" to input.tokenTypeIds,
        )
        val ran = backend.run(signature, inputNames.associateWith { arrays.getValue(it) })  // each [1, S] int32
        val tokens = SequenceBuckets.tokens(input)
        if (!layout.bucketed) return Result(ran.outputs, ran.millis, signature.length, null, tokens)
        val outputs = ran.outputs.mapValues { (name, values) ->
            val axis = layout.sequenceAxes[name]
            if (axis == null) values else SequenceBuckets.trimmed(values, signature.outputShapes.getValue(name), axis, tokens)
        }
        return Result(outputs, ran.millis, signature.length, signature.key, tokens)
    }

    /** Top-k tokens for every [MASK]: (token, probability) pairs. */
    fun fillMask(text: String, topK: Int = 5): Pair<List<List<Pair<String, Float>>>, Result> {
        val encoding = encode(text)
        val result = run(encoding)
        val logits = result.outputs.getValue("logits")
        val vocab = logits.size / result.positions
        val answers = encoding.inputIds.indices.filter { encoding.inputIds[it] == tokenizer.maskId }.map { position ->
            val probs = softmax(logits, position * vocab, vocab)
            probs.indices.sortedByDescending { probs[it] }.take(topK).map { tokenizer.idToToken(it) to probs[it] }
        }
        return answers to result
    }

    /** Labels with probabilities, best first. */
    fun classify(text: String): Pair<List<Pair<String, Float>>, Result> {
        val result = run(encode(text))
        val probs = softmax(result.outputs.getValue("logits"), 0, result.outputs.getValue("logits").size)
        val ranked = probs.indices.sortedByDescending { probs[it] }.map { (labels.getOrNull(it) ?: "LABEL_$it") to probs[it] }
        return ranked to result
    }

    /**
     * One unit-length vector for [text]: a sentence-embedding export's pooled
     * `sentence_embedding`, or for a feature-extraction export the mean of its token states
     * over the real tokens (pooled here, as the graph would). Java's pooling is checked
     * against Python's on the JVM (EmbeddingCheck).
     */
    fun embed(text: String): Pair<FloatArray, Result> {
        val encoding = encode(text)
        val result = run(encoding)
        // a bucket's token states are cut to the real tokens: so is the mask they are pooled with
        val mask = if (result.positions == encoding.length()) encoding.attentionMask else encoding.attentionMask.copyOf(result.positions)
        val pooled = result.outputs["sentence_embedding"] ?: result.outputs["last_hidden_state"]?.let { tokens ->
            Embeddings.meanPool(tokens, mask, tokens.size / result.positions)
        } ?: error("a $task export has no sentence_embedding or last_hidden_state output")
        return Embeddings.normalize(pooled) to result
    }

    /** [documents] ranked by cosine similarity to [query], best first, and every run (query first). */
    fun search(query: String, documents: List<String>): Pair<List<Pair<String, Double>>, List<Result>> {
        val (queryVector, queryRun) = embed(query)
        val embedded = documents.map { embed(it) }
        val vectors = embedded.map { it.first }.toTypedArray()
        val order = Embeddings.nearest(queryVector, vectors, vectors.size, -1)
        val ranked = order.map { documents[it] to Embeddings.cosine(queryVector, vectors[it]) }
        return ranked to listOf(queryRun) + embedded.map { it.second }
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
