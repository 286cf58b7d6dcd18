plugins {
    id("com.android.application")
    id("org.jetbrains.kotlin.android")
}

android {
    namespace = "dev.pocketbert.demo"
    compileSdk = 35

    defaultConfig {
        applicationId = "dev.pocketbert.demo"
        minSdk = 24
        targetSdk = 35
        versionCode = 1
        versionName = "0.1.0"
    }

    // the model is memory-mapped from the APK: it must stay uncompressed
    androidResources {
        noCompress += "tflite"
    }

    compileOptions {
        sourceCompatibility = JavaVersion.VERSION_17
        targetCompatibility = JavaVersion.VERSION_17
    }
    kotlinOptions {
        jvmTarget = "17"
    }
}

dependencies {
    implementation(project(":tokenizer"))
    // LiteRT 2: the CompiledModel API (com.google.ai.edge.litert.*) and, in the same artifact, the
    // Interpreter API (org.tensorflow.lite.*, CPU with XNNPACK) that stays the fallback
    implementation("com.google.ai.edge.litert:litert:2.3.0")
    // CompiledModel's GPU accelerator, its own artifact from 2.3.0 (without it Accelerator.GPU fails to open)
    implementation("com.google.ai.edge.litert:litert-gpu:2.3.0")
    implementation("androidx.appcompat:appcompat:1.7.0")
}
