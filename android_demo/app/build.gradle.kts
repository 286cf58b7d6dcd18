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
    // LiteRT's Interpreter API (org.tensorflow.lite.* classes), CPU with XNNPACK
    implementation("com.google.ai.edge.litert:litert:1.4.1")
    implementation("androidx.appcompat:appcompat:1.7.0")
}
