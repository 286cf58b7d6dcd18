package dev.pocketbert.demo

import android.content.Context
import android.util.Log
import com.google.ai.edge.litert.Accelerator
import java.io.FileInputStream
import java.nio.MappedByteBuffer
import java.nio.channels.FileChannel

/** What the user asks for. GPU is tried first and falls back; CPU never touches the GPU. */
enum class AcceleratorChoice { CPU, GPU }

/**
 * One way of running the .tflite: int32 inputs by signature input name in, float outputs by
 * signature output name out (flattened, row-major, at the [ModelSignature]'s length), with the
 * time the runtime took. [run] takes the signature [BertModel] picked (a bucket, or the file's
 * only one); the backend does not choose. [name] says what runs it ("LiteRT CompiledModel GPU",
 * "LiteRT Interpreter XNNPACK"), for the screens and the benchmark line.
 */
interface InferenceBackend : AutoCloseable {
    val name: String
    fun run(signature: ModelSignature, inputs: Map<String, IntArray>): Result
}

/** A backend and how long opening it took (failed attempts before it are not counted). */
class OpenedBackend(val backend: InferenceBackend, val initMillis: Double)

object Backends {
    const val TAG = "PocketBert"
    const val MODEL_ASSET = "model.tflite"

    /**
     * LiteRT's CompiledModel on the GPU (only when asked), then CompiledModel on the CPU, then
     * the Interpreter with XNNPACK: the first that opens is used, each failure is logged (no
     * GPU accelerator in the APK or on the device, an op the accelerator rejects, ...).
     */
    fun open(
        context: Context,
        choice: AcceleratorChoice,
        threads: Int,
        useXnnpack: Boolean,
        inputNames: List<String>,
        signatures: List<ModelSignature>,
    ): OpenedBackend {
        val accelerators = if (choice == AcceleratorChoice.GPU) listOf(Accelerator.GPU, Accelerator.CPU) else listOf(Accelerator.CPU)
        for (accelerator in accelerators) {
            val start = System.nanoTime()
            try {
                val backend = CompiledBackend.open(context.assets, MODEL_ASSET, accelerator, threads, inputNames, signatures)
                return OpenedBackend(backend, millisSince(start))
            } catch (e: Throwable) {
                if (e is VirtualMachineError) throw e
                // LiteRtException from create/createInputBuffer, or a LinkageError if the native library is missing
                Log.w(TAG, "LiteRT CompiledModel ${accelerator.name} failed after %.0f ms, falling back".format(millisSince(start)), e)
            }
        }
        val start = System.nanoTime()
        val backend = InterpreterBackend(mapModel(context), threads, useXnnpack)
        return OpenedBackend(backend, millisSince(start))
    }

    private fun millisSince(start: Long) = (System.nanoTime() - start) / 1e6

    /** The model memory-mapped from the APK (it is stored uncompressed: noCompress += "tflite"). */
    private fun mapModel(context: Context): MappedByteBuffer {
        context.assets.openFd(MODEL_ASSET).use { fd ->
            FileInputStream(fd.fileDescriptor).channel.use { channel ->
                return channel.map(FileChannel.MapMode.READ_ONLY, fd.startOffset, fd.declaredLength)
            }
        }
    }
}
