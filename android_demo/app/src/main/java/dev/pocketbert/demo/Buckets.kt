package dev.pocketbert.demo

import dev.pocketbert.tokenizer.SequenceBuckets
import org.json.JSONArray
import org.json.JSONObject

/**
 * One signature of the .tflite that the backends run: its [key] (null: the file's only
 * signature, run as before buckets existed; "seq_32" for a bucket), the sequence [length] it
 * takes and the shape of every output at that length.
 */
class ModelSignature(val key: String?, val length: Int, val outputShapes: Map<String, IntArray>)

/**
 * The lengths manifest.json (copied by `pocketbert android-assets`) gives. A bucketed export
 * (`--seq-lens 16 32 64 128`) lists them under `spec.buckets` and names the varying axis
 * "sequence" in the shapes of `inputs` and `outputs`; any other .tflite has one static length,
 * the last dimension of its first input, and empty `spec.buckets`.
 */
class SequenceLayout(manifest: JSONObject) {
    /** Ascending; empty for a single-length file. */
    val buckets: IntArray = manifest.optJSONObject("spec")?.optJSONArray("buckets")
        ?.let { lengths -> SequenceBuckets.sorted(IntArray(lengths.length()) { lengths.getInt(it) }) }
        ?: IntArray(0)
    val bucketed: Boolean = buckets.isNotEmpty()
    val inputNames: List<String> = manifest.getJSONArray("inputs").let { inputs ->
        (0 until inputs.length()).map { inputs.getJSONObject(it).getString("name") }
    }

    /** The most tokens an input may have: the file's one length, or its largest bucket. */
    val maxLength: Int = if (bucketed) {
        buckets.last()
    } else {
        manifest.getJSONArray("inputs").getJSONObject(0).getJSONArray("shape").let { it.getInt(it.length() - 1) }
    }

    private val outputs: JSONArray = manifest.getJSONArray("outputs")

    /** Per output with a sequence axis (start_logits, last_hidden_state ...), that axis; bucketed files only. */
    val sequenceAxes: Map<String, Int> = if (!bucketed) emptyMap() else (0 until outputs.length()).mapNotNull { i ->
        val output = outputs.getJSONObject(i)
        val shape = output.getJSONArray("shape")
        (0 until shape.length()).firstOrNull { shape.get(it) == SEQUENCE }?.let { output.getString("name") to it }
    }.toMap()

    /** Every signature the file has: one per bucket, or the single default one. */
    val signatures: List<ModelSignature> = if (bucketed) {
        buckets.map { ModelSignature(SequenceBuckets.signature(it), it, outputShapes(it)) }
    } else {
        listOf(ModelSignature(null, maxLength, outputShapes(maxLength)))
    }
    private val byLength: Map<Int, ModelSignature> = signatures.associateBy { it.length }

    /** The signature an input of [tokens] tokens runs in (the app's one place that picks a bucket). */
    fun signatureFor(tokens: Int): ModelSignature =
        if (bucketed) byLength.getValue(SequenceBuckets.pick(buckets, tokens)) else signatures.single()

    private fun outputShapes(length: Int): Map<String, IntArray> = (0 until outputs.length()).associate { i ->
        val output = outputs.getJSONObject(i)
        val name = output.getString("name")
        val shape = output.getJSONArray("shape")
        name to IntArray(shape.length()) { d ->
            val dimension = shape.get(d)
            when {
                dimension is Number -> dimension.toInt()
                bucketed && dimension == SEQUENCE -> length
                else -> throw IllegalArgumentException("manifest.json: output $name has a dimension $dimension (not a static .tflite export)")
            }
        }
    }

    companion object {
        /** The manifest's name of the axis whose size is the bucket. */
        const val SEQUENCE = "sequence"
    }
}
